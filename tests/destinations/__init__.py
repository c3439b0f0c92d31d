"""Mock vendor servers and a hand-made warehouse for the activation tests."""
