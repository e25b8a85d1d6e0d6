"""Per-model data and readers: `defaults` (model-type defaults of config.json fields, issue 13);
per-architecture weight readers live beside it (attncli/models/<family>.py)."""
