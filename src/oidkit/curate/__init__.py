"""Data curation: operators over batches of records, the recipe runner and its engines."""
