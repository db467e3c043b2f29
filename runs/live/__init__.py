"""Live updates of a run's page: `publish` sends numbered messages to a run's channel group,
`consumers` is the websocket endpoint (snapshot, then increments), `routing` its URL."""
