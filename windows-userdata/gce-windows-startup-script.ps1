# GCE: the value of the instance metadata key windows-startup-script-ps1
#   gcloud compute instances add-metadata VM --metadata-from-file windows-startup-script-ps1=gce-windows-startup-script.ps1
# GCE runs it on every boot as LocalSystem; --once makes the later boots of the
# same instance (its numeric ID from the metadata server) do nothing but
# rewrite the proxy environment file. The tags come from the instance
# attribute rs_agent-tags (docs/clouds.md).
$ErrorActionPreference = 'Stop'
& 'C:\Program Files\tagstrap\tagstrap.exe' run --once --write-env 'C:\ProgramData\tagstrap\proxy.env'
exit $LASTEXITCODE
