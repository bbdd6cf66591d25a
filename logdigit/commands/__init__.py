"""Click commands of the ``logdigit`` CLI, one module each (thin: parse and call)."""
