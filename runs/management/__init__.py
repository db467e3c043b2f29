"""The app's commands (`serve`, `run_suite`, `create_token`) and the first start's setup
(`bootstrap`: the demo suite and the admin user)."""
