; Inno Setup script for RadAssist on Windows. UNTESTED: no Windows machine was available when
; it was written (see installer/README.md). It packs the PyInstaller one-folder bundle, built
; on Windows with the same spec:
;
;   py -3.11 -m venv .venv && .venv\Scripts\pip install -e ".[installer]"
;   .venv\Scripts\pyinstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller installer\radassist.spec
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DAppVersion=0.1.0 installer\windows\radassist.iss
;
; The icon: make installer\windows\radassist.ico from resources\icons\radassist-*.png first,
; e.g. with Pillow:  img.save("radassist.ico", sizes=[(16,16),(24,24),(32,32),(48,48),(64,64),(256,256)])
; Output: dist\radassist-<version>-windows-x64-setup.exe (per-machine install, needs admin).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "RadAssist"
#define BundleDir "..\..\dist\radassist"

[Setup]
AppId={{6F2B8C4E-3D1A-4E8B-9C55-2A7D0E4B9F13}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=RadAssist contributors
AppComments=Research use only - not for diagnosis
DefaultDirName={autopf}\RadAssist
DefaultGroupName=RadAssist
DisableProgramGroupPage=yes
PrivilegesRequired=admin
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=radassist-{#AppVersion}-windows-x64-setup
SetupIconFile=radassist.ico
UninstallDisplayIcon={app}\radassist-gui.exe
; the CUDA build of PyTorch makes the bundle several GB: LZMA2 on solid archives is slow but small
Compression=lzma2/normal
SolidCompression=yes
DiskSpanning=no
WizardStyle=modern

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\RadAssist"; Filename: "{app}\radassist-gui.exe"; Comment: "Review CNN findings over DICOM studies (research use only)"
Name: "{group}\RadAssist information"; Filename: "{cmd}"; Parameters: "/k ""{app}\radassist.exe"" info"
Name: "{autodesktop}\RadAssist"; Filename: "{app}\radassist-gui.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
; First start: choose the device and measure the time per image once, so the first study opens
; without the wait (the figure is cached in %LOCALAPPDATA%\RadAssist).
Filename: "{app}\radassist.exe"; Parameters: "info"; Flags: runhidden postinstall skipifsilent; Description: "Measure RadAssist's speed on this computer now"
