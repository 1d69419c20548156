# Registers tagstrap as a boot task on a baked Windows image (run once, as
# Administrator, while building the image):
#   powershell.exe -NoProfile -ExecutionPolicy Bypass -File install-task.ps1
# The task runs at every boot as SYSTEM; --once makes later boots of the same
# instance do nothing but rewrite the proxy environment file. The store's
# token lives in C:\ProgramData\tagstrap\vault-token, readable by SYSTEM and
# Administrators only (set below); config.toml names it ([vault] token_file).
$ErrorActionPreference = 'Stop'
$exe = 'C:\Program Files\tagstrap\tagstrap.exe'
$data = 'C:\ProgramData\tagstrap'
New-Item -ItemType Directory -Force -Path $data | Out-Null
# Only SYSTEM and Administrators may read the state, the token and proxy.env.
icacls $data /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null
$action = New-ScheduledTaskAction -Execute $exe -Argument ('run --once --write-env "' + $data + '\proxy.env"')
$trigger = New-ScheduledTaskTrigger -AtStartup
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
# tagstrap retries until its own --deadline (600 s by default).
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Minutes 30) -StartWhenAvailable
Register-ScheduledTask -TaskName 'tagstrap' -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force | Out-Null
