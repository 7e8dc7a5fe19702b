"""Placeholder replaced below."""
def show_drilldown(result, shell):
    return None
