from forecaster.cli.main import app

app(prog_name="forecaster")
