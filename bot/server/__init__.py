"""What runs inside the Rasa server (and starts the action server): channels, NLU components, tracker
and lock stores, the agent console's and the widget's routes, the patches of Rasa internals, and the
launchers. The only part of ``bot`` that imports Rasa; it calls the core, never the other way round."""
