"""python -m forecaster.forecast_store upgrade [URL]"""

from forecaster.forecast_store.schema import main

main()
