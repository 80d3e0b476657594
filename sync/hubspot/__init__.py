"""The HubSpot adapter: wire shapes, and (later) the SDK and raw endpoints behind the ports."""
