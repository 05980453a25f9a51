"""Organisation claims as they are typed by people: in settings, the admin API, requests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from identity.credentials import Organisation, check_credit_code
from policy.operands import Grade, check_region_code


class OrganisationClaims(BaseModel):
    """What a credential says about its holder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    credit_code: str = Field(alias="creditCode")
    """Unified social credit code (统一社会信用代码), GB 32100 check character verified."""
    region: str
    """Administrative division code (GB/T 2260)."""
    data_grade: Grade = Field(alias="dataGrade")

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        return check_credit_code(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region_code(value)

    def organisation(self) -> Organisation:
        return Organisation(self.name, self.credit_code, self.region, self.data_grade)
