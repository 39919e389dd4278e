"""Readers that turn every supported data source into one feature schema and padded tables."""
