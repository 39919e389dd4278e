"""gmlrec serving API (FastAPI). It carries no torch: it reads exported model bundles only.

The HTTP endpoints arrive with the export and serving work; until then this package holds
nothing, so that a serving-only install (`pip install gmlrec[serve]`) already resolves.
"""
