"""The core: intake, validation, chunking, applying and settling batches."""
