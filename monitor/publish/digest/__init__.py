"""The daily digest: its content (`build`), the rows of its tables (`lines`), and the e-mail
that carries it, claimed once per day and sent (`mail`).

Dependency direction: part of `monitor.publish`; reads figures through `monitor.store` and
sends through the shared `deliveries`, `mailer` and `templating`.
"""
