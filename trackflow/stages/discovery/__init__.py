"""The discovery stage, one module per part (clusters, outliers, similar, playlists, map) plus its summary,
the dispatcher `discover` and the registration of the three discovery models."""
