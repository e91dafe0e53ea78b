"""Values every layer shares: errors, options, settings, the machine's figures."""
