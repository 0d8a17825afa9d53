"""A dark theme for reading rooms: low luminance chrome, so that the image is the brightest thing."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#3d8bd9"
WARNING = "#e0a030"
POSITIVE = "#e4572e"
NEGATIVE = "#5fb36b"

_STYLE = f"""
QWidget {{ font-size: 10pt; }}
QMainWindow::separator {{ background: #202225; width: 3px; height: 3px; }}
QDockWidget {{ color: #c8ccd2; }}
QDockWidget::title {{ background: #1c1e21; padding: 4px 6px; text-align: left; }}
QTreeView, QTableView, QListView, QPlainTextEdit, QTextEdit, QLineEdit {{
    background: #141517; alternate-background-color: #191a1d; border: 1px solid #2a2c30;
    selection-background-color: #27507a; selection-color: #ffffff;
}}
QHeaderView::section {{ background: #1c1e21; color: #aab0b8; border: 0; padding: 3px 6px; }}
QToolBar {{ background: #1a1b1e; border: 0; spacing: 2px; padding: 2px; }}
QToolButton {{ padding: 3px 5px; border-radius: 3px; }}
QToolButton:hover {{ background: #2a2d32; }}
QToolButton:checked {{ background: #27507a; }}
QStatusBar {{ background: #161719; color: #aab0b8; }}
QProgressBar {{ border: 1px solid #2a2c30; border-radius: 3px; background: #141517;
    text-align: center; height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT}; }}
QSlider::groove:horizontal {{ height: 4px; background: #2a2c30; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: #8a9099; width: 12px; margin: -5px 0; border-radius: 6px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QPushButton {{ background: #24262a; border: 1px solid #34373c; border-radius: 3px; padding: 4px 10px; }}
QPushButton:hover {{ background: #2c2f34; }}
QPushButton:pressed {{ background: #27507a; }}
QPushButton:disabled {{ color: #5c6066; }}
QLabel#researchNotice {{ color: {WARNING}; font-weight: bold; padding: 0 8px; }}
QLabel#panelNotice {{ color: {WARNING}; font-weight: bold; }}
QLabel#caption, QLabel#findingWhere, QLabel#decidedLabel, QLabel#tagStatus {{ color: #8a9099; }}
QLabel#findingsSummary {{ color: #c8ccd2; }}
QLabel#modelLabel {{ color: #aab0b8; }}
QFrame#findingCard {{ background: #1c1e22; border: 1px solid #2a2c30; border-radius: 4px; }}
QFrame#findingCard[selected="true"] {{ background: #1c2733; border: 1px solid {ACCENT}; }}
QFrame#reviewBox {{ background: #1c1e22; border: 1px solid #2a2c30; border-radius: 4px; }}
QPushButton#acceptButton:enabled {{ border-color: #3f7a48; }}
QPushButton#rejectButton:enabled {{ border-color: #8a3b2a; }}
QPushButton#runButton {{ background: #27507a; border-color: #3d8bd9; font-weight: bold; }}
QPushButton#runButton:disabled {{ background: #24262a; border-color: #34373c; }}
QLabel#deviceBadge {{ color: #d0d4da; background: #24262a; border-radius: 3px; padding: 1px 6px; }}
QMenu {{ background: #1c1e21; border: 1px solid #2a2c30; }}
QMenu::item:selected {{ background: #27507a; }}
QTabBar::tab {{ background: #1c1e21; padding: 4px 10px; border: 0; }}
QTabBar::tab:selected {{ background: #27507a; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette; works the same on every platform and offscreen."""
    app.setStyle("Fusion")
    pal = QPalette()
    base = QColor("#141517")
    window = QColor("#1a1b1e")
    text = QColor("#d7dade")
    disabled = QColor("#5c6066")
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#191a1d"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#24262a"))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#24262a"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.BrightText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor("#27507a"))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Link, QColor(ACCENT))
    pal.setColor(QPalette.ColorRole.PlaceholderText, disabled)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    app.setPalette(pal)
    app.setStyleSheet(_STYLE)
