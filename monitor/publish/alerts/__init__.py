"""Alerts: the built-in rules (`rules`, pure), alert state and the notices it owes (`state`,
pure), what a notice says (`notices`), notices grouped into notifications (`groups`), and the
run that evaluates them against the store and notifies (`run`).

Dependency direction: part of `monitor.publish`; reads `monitor.store`, sends through
`monitor.publish.notifiers` and `deliveries`.
"""
