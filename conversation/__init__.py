"""Conversations and their state, turn jobs, the engine (LLM and offline rules), its tools, context store, handoff."""
