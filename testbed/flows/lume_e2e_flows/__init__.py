"""Flows written the way LUME-services writes its own (lume_services_test_flows): a package
installed into the flow-run image, each flow stored as ``Module(<its module>)``."""
