"""The typed JSON rows the operator services build (``rows``) name exactly the fields of the
response models the OpenAPI document is generated from (``responses``): a field added to one
and not the other fails here, before a client or a template finds out."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bot.web.operators import responses as out
from bot.web.operators import rows

PAIRS: list[tuple[type, type[BaseModel]]] = [
    (rows.DashboardJson, out.Dashboard), (rows.SchedulerRunJson, out.SchedulerRunOut),
    (rows.FailureJson, out.FailureOut), (rows.LiveCampaignJson, out.LiveCampaign),
    (rows.CampaignJson, out.CampaignOut), (rows.PreviewJson, out.Preview),
    (rows.SmsPreviewJson, out.SmsPreview), (rows.PreviewSampleJson, out.PreviewSample),
    (rows.PreviewWarningJson, out.PreviewWarning), (rows.ChannelSplitJson, out.ChannelSplit),
    (rows.CampaignStatsJson, out.CampaignStats), (rows.ClaimJson, out.ClaimOut),
    (rows.ClaimEventJson, out.ClaimEventOut), (rows.DocumentJson, out.DocumentOut),
    (rows.CustomerJson, out.CustomerRow), (rows.CustomerDetailJson, out.CustomerDetail),
    (rows.ChoiceJson, out.ChoiceOut), (rows.CustomerChoicesJson, out.CustomerChoices),
    (rows.PolicyJson, out.PolicyOut), (rows.ClaimBriefJson, out.ClaimBrief),
    (rows.ConsentJson, out.ConsentOut), (rows.LedgerEntryJson, out.LedgerEntryOut),
    (rows.PointsJson, out.PointsOut), (rows.MessageJson, out.MessageOut),
    (rows.TaskBriefJson, out.TaskBrief), (rows.CustomerProfileJson, out.CustomerProfile),
    (rows.SharedPhoneCustomerJson, out.SharedPhoneCustomer),
    (rows.SharedPhoneJson, out.SharedPhoneOut), (rows.PointsAdjustedJson, out.PointsAdjusted),
    (rows.RewardJson, out.RewardOut), (rows.TaskJson, out.TaskOut),
    (rows.ImportJson, out.ImportResult),
    (rows.ConversationJson, out.ConversationOut),
    (rows.ConversationMessageJson, out.ConversationMessageOut), (rows.ThreadJson, out.ThreadOut),
    (rows.InboxCountsJson, out.InboxCounts), (rows.ReplyPreviewJson, out.ReplyPreview),
    (rows.ComplaintJson, out.ComplaintOut),
    (rows.ComplaintExtensionJson, out.ComplaintExtensionOut),
    (rows.SatisfactionJson, out.SatisfactionOut),
    (rows.SatisfactionGroupJson, out.SatisfactionGroup),
    (rows.SatisfactionMonthJson, out.SatisfactionMonth),
    (rows.OperatorRedemptionJson, out.OperatorRedemption), (rows.ErasureJson, out.ErasureOut),
]


@pytest.mark.parametrize(("row", "model"), PAIRS, ids=[row.__name__ for row, _ in PAIRS])
def test_a_row_names_the_fields_of_its_response_model(row: type, model: type[BaseModel]
                                                      ) -> None:
    keys = row.__required_keys__ | row.__optional_keys__  # type: ignore[attr-defined]
    assert sorted(keys) == sorted(model.model_fields)
    optional = {name for name, info in model.model_fields.items() if not info.is_required()}
    assert row.__optional_keys__ <= optional  # type: ignore[attr-defined]


def test_every_row_is_paired() -> None:
    typed = {value for value in vars(rows).values()
             if isinstance(value, type) and value.__module__ == rows.__name__}
    assert typed == {row for row, _ in PAIRS}
