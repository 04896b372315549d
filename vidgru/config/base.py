from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Every config section forbids unknown keys, so a typo is an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
