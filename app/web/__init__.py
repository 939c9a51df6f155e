"""The web dashboard: server-rendered pages and the forms behind them, for people in a browser."""
