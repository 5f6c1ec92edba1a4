"""Serving a model to a class: loading (embedded, hub, encoder), the fair slots for heavy work, the batched engine, generation, memory and int8. Never imports a lesson."""
