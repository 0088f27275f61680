"""assay: turn raw reasoning prompts into a verified SFT dataset."""

__version__ = "0.1.0"
