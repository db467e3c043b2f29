"""Static files storage: WhiteNoise's compressed, content-hashed files once `serve` has collected
them; before that (tests, a bare `runserver` or `daphne dashboard.asgi:application`), a page
still renders and its files are served from the finders under their plain names."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False

    def stored_name(self, name):
        try:
            return super().stored_name(name)
        except ValueError:  # not collected into STATIC_ROOT
            return name
