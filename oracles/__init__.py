"""Omniclear oracle module: price sources, aggregation, RWA calendars, signed reports."""
