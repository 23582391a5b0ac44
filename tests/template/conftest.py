"""The template's fixtures, for every test module here."""

from tests.template.test_template import deployed, resources, sam_template

__all__ = ["deployed", "resources", "sam_template"]
