"""WinCC alarms as OPC UA Alarms & Conditions: state.py (rules), nodes.py (instances), service.py (poller),
methods.py (Acknowledge, AddComment, ConditionRefresh), records.py (fields), events.py (filters), wiring.py."""
