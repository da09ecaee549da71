"""wincc-opcua-bridge: an OPC UA server in front of the Siemens WinCC REST API."""

__version__ = "0.1.0"
