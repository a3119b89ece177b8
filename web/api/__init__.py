"""One module of endpoints per area of the API."""
