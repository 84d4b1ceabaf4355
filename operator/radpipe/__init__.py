"""radpipe: automated image analysis on the hospital PACS."""

__version__ = "0.1.0"
