"""Discovery: track clusters, outliers, similar-track search and playlists on the standardised audio space.

Every model here takes raw track rows (the dataset's columns) and carries its own fitted `AudioSpace`, so a
pickled or MLflow-logged model needs nothing else at load time.
"""


class DiscoveryInputError(ValueError):
    """Rows given to a discovery model lack required columns, or a request names an unknown track/feature.
    Defined here, free of heavy imports, so that the CLI can name it without loading the models."""


# The parts of the discovery stage, in the order their outputs are summarised (trackflow/stages/discovery).
PARTS: tuple[str, ...] = ("clusters", "outliers", "similar", "playlists", "map")
