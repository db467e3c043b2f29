"""The Django app (label `runs`): the only bridge between the web and the engine (`runner`).

Packages, in layers (README: Architecture): `models`; `flaky` and `live.publish` above them;
`execution` (the only driver of the engine's processes); and the endpoints `pages`, `api`,
`live.consumers` and `management`. `permissions` answers who may do what for all of them.
"""
