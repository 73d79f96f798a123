"""What every provider emulator is built from: scripted and random faults (`faults`) and how they strike a call
(`strike`), signed webhook delivery with retries (`webhooks`), the `/_emulator/...` admin routes (`admin`) and
their client (`client`), the request log (`requests`), settings from the environment (`settings`) and the runner
(`runner`). Import from the modules; the package exports nothing."""
