"""Pages of the Dash app; each module registers itself with `dash.register_page`."""
