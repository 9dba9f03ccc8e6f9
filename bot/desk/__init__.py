"""The conversations desk: where people take over from the bot.

``threads`` keeps one thread per customer across Telegram and SMS (the customer's free
texts, the bot's answers, operators' replies) and decides, for each free text, whether the
bot answers, hands the conversation to a person, or keeps quiet because a person has it.
Channels (``bot.telegram.desk``, ``bot.sms.conversations``) call it; the console and the
API (``bot.web.operators.inbox``) read and answer threads through it. Operators' replies go
through the outbox like every other message.
"""
