"""Taking a model apart: its anatomy, scoped hooks, the one forward trace, interventions. Never imports a lesson."""
