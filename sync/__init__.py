"""leadsync: explainable lead scoring for HubSpot."""

__version__ = "0.1.0"
