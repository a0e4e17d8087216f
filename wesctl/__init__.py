"""wesctl: submit, track and cancel GA4GH WES runs at execution providers."""

__version__ = "0.1.0"
