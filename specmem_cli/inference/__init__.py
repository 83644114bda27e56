"""Using a trained run: forecasts of new data (``forecast``) and a look inside its memory (``modes``)."""
