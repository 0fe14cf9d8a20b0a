"""The Telegram adapter: one module per feature, one router, one outbox for everything sent."""
