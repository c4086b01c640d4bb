"""``ember.utils.data``: datasets, samplers, collation and the DataLoader."""
