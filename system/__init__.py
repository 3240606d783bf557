"""bgg-reliability: a board-game catalogue API that imports from BoardGameGeek."""

__version__ = "0.1.0"
