"""``esmsim import``: a CloudFormation or SAM template turned into a scenario.

* ``decode``: cfn-lint decodes the template (YAML or JSON, intrinsic-function tags such as
  ``!Ref`` and ``!GetAtt``); aws-sam-translator expands SAM (``AWS::Serverless::Function`` and its
  ``Events``, globals, defaults) into CloudFormation.
* ``reader``: the CloudFormation resources esmsim models, read into scenario data. Resources are
  named by their logical IDs; what a template cannot say (traffic, handler durations) becomes a
  placeholder that validates; what cannot be imported is listed, never skipped silently.
* ``writer``: the scenario written as YAML, placeholders marked, after it validates.

docs/model.md §13. Both libraries are optional dependencies (``pip install 'esmsim[aws]'``).
"""

from esmsim.importer.reader import Imported, import_template
from esmsim.importer.writer import PLACEHOLDER_NOTE, render, write_scenario

__all__ = ["PLACEHOLDER_NOTE", "Imported", "import_template", "render", "write_scenario"]
