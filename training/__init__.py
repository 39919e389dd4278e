"""gmlrec training: data readers, evaluation protocols, FM-family models, trainer and CLI."""
