"""Releases: from a clean tagged commit to checked wheels, checksums, notes and SBOMs (``release``),
and the weekly upstream canary (``canary``)."""
