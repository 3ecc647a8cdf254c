"""The standalone asyncio WebSocket process for Hyperliquid 1-minute candles (``market stream``)."""
