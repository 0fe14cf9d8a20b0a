"""Use cases every adapter shares: question flows, the diary, follow-ups. No Telegram."""
