"""The pure core: no I/O here, only functions from values to values.

`normalize` reads an upstream answer, `lifecycle` decides what an answer
changes and which event it makes, `schedule` chooses the next poll time,
`resource` renders the public task resource, `signing` signs webhooks.
"""
