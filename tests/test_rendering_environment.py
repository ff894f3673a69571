from datetime import date

import pytest

from campaign_engine.errors import TemplateError
from campaign_engine.rendering import (
    build_environment,
    load_template_set,
    render_message,
)

SIGNATURE = "【XX银行】"
OPT_OUT = "回复TD退订"


@pytest.fixture
def context():
    return {
        "customer": {"name": "欧阳娜", "gender": "F", "mobile": "13812345678"},
        "deposit": {"amount": 50000, "maturity_date": date(2026, 3, 15),
                    "account_no": "6222021234567890", "rate": 2.15},
    }


@pytest.fixture
def make_set(tmp_path):
    """Write the given parts into templates/<name>/ and load them as a template set."""
    def make(parts, name="maturity"):
        folder = tmp_path / name
        folder.mkdir()
        for part, text in parts.items():
            (folder / part).write_text(text, encoding="utf-8")
        return load_template_set(build_environment(tmp_path), name)
    return make


def test_render_message_renders_sms_with_filters(make_set, context):
    template_set = make_set({"sms.txt.j2": (
        "{{ customer.name | salutation(customer.gender) }}，您{{ deposit.account_no | mask_account }}"
        "的定期{{ deposit.amount | money }}将于{{ deposit.maturity_date | cn_date }}到期\n")})
    message = render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=OPT_OUT)
    assert message.body == (
        "【XX银行】欧阳女士，您尾号7890的定期¥50,000.00将于2026年3月15日到期。回复TD退订")
    assert (message.channel, message.subject, message.html) == ("sms", None, None)
    assert message.sms.encoding == "UCS-2"
    assert message.sms.segments == 1


def test_render_message_renders_email_parts(make_set, context):
    template_set = make_set({
        "email.subject.j2": "  {{ customer.name | salutation(customer.gender) }}：\n存款到期提醒\n",
        "email.txt.j2": "利率{{ deposit.rate | percent }}",
        "email.html.j2": "<p>利率{{ deposit.rate | percent }}</p>",
    })
    message = render_message(template_set, "email", context, signature=SIGNATURE, opt_out=OPT_OUT)
    assert message.subject == "欧阳女士： 存款到期提醒"
    assert message.body == "利率2.15%"
    assert message.html == "<p>利率2.15%</p>"
    assert message.sms is None


def test_render_message_escapes_html_only_in_html_part(make_set, context):
    context["customer"]["name"] = "<script>x</script>"
    template_set = make_set({
        "sms.txt.j2": "{{ customer.name }}",
        "email.subject.j2": "{{ customer.name }}",
        "email.txt.j2": "{{ customer.name }}",
        "email.html.j2": "<p>{{ customer.name }}</p>",
    })
    sms = render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    email = render_message(template_set, "email", context, signature=SIGNATURE, opt_out=None)
    assert sms.body == "【XX银行】<script>x</script>"
    assert email.body == "<script>x</script>"
    assert email.html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_render_message_raises_naming_variable_and_line_when_attribute_undefined(make_set, context):
    template_set = make_set({"sms.txt.j2": "您好\n{{ customer.nickname }}，存款到期"})
    with pytest.raises(TemplateError) as caught:
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    error = caught.value
    assert (error.template, error.part, error.line) == ("maturity", "sms.txt.j2", 2)
    assert "'nickname'" in error.reason
    assert "customer.nickname" in error.reason


def test_render_message_raises_naming_variable_when_top_level_undefined(make_set, context):
    template_set = make_set({"sms.txt.j2": "{{ foo }}"})
    with pytest.raises(TemplateError, match="'foo' is undefined") as caught:
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.line == 1


def test_render_message_raises_when_undefined_used_in_condition(make_set, context):
    template_set = make_set({"sms.txt.j2": "{% if customer.vip %}尊享{% endif %}存款到期"})
    with pytest.raises(TemplateError, match="'vip'"):
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)


@pytest.mark.parametrize("expression", [
    "''.__class__.__mro__",
    "customer.__class__",
    "customer.update({'name': 'x'})",
    "deposit.amount.__class__.__subclasses__()",
])
def test_render_message_raises_on_sandbox_escape(make_set, context, expression):
    template_set = make_set({"sms.txt.j2": f"存款\n{{{{ {expression} }}}}"})
    with pytest.raises(TemplateError, match="unsafe") as caught:
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.line == 2


def test_render_message_raises_with_line_when_filter_rejects_value(make_set, context):
    context["deposit"]["amount"] = None
    template_set = make_set({"sms.txt.j2": "您好\n\n金额{{ deposit.amount | money }}"})
    with pytest.raises(TemplateError, match="money") as caught:
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.line == 3


def test_render_message_raises_when_sms_too_long(make_set, context):
    template_set = make_set({"sms.txt.j2": "{% for i in range(600) %}存{% endfor %}"})
    with pytest.raises(TemplateError, match="over the limit") as caught:
        render_message(template_set, "sms", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.part == "sms.txt.j2"


def test_render_message_raises_when_channel_missing(make_set, context):
    template_set = make_set({"sms.txt.j2": "存款到期"})
    with pytest.raises(TemplateError, match="'email'") as caught:
        render_message(template_set, "email", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.template == "maturity"


def test_render_message_raises_when_subject_empty(make_set, context):
    template_set = make_set({"email.subject.j2": " \n ", "email.txt.j2": "正文"})
    with pytest.raises(TemplateError, match="subject is empty") as caught:
        render_message(template_set, "email", context, signature=SIGNATURE, opt_out=None)
    assert caught.value.part == "email.subject.j2"


def test_render_message_renders_html_only_email_with_empty_text_body(make_set, context):
    template_set = make_set({"email.subject.j2": "提醒", "email.html.j2": "<p>正文</p>"})
    message = render_message(template_set, "email", context, signature=SIGNATURE, opt_out=None)
    assert (message.body, message.html) == ("", "<p>正文</p>")


def test_template_set_channels_lists_complete_channels(make_set):
    template_set = make_set({"sms.txt.j2": "a", "email.subject.j2": "b", "email.html.j2": "c"})
    assert template_set.channels == ("sms", "email")
    assert set(template_set.templates) == {"sms.txt.j2", "email.subject.j2", "email.html.j2"}


def test_load_template_set_raises_when_folder_missing(tmp_path):
    with pytest.raises(TemplateError, match="no template") as caught:
        load_template_set(build_environment(tmp_path), "absent")
    assert (caught.value.template, caught.value.part) == ("absent", None)


def test_load_template_set_raises_when_no_channel_complete(make_set):
    with pytest.raises(TemplateError, match="no usable channel"):
        make_set({"email.subject.j2": "subject only"})


def test_load_template_set_raises_with_line_on_syntax_error(make_set):
    with pytest.raises(TemplateError) as caught:
        make_set({"sms.txt.j2": "ok\n\n{{ customer.name | }}"})
    assert caught.value.part == "sms.txt.j2"
    assert caught.value.line == 3


def test_build_environment_strips_single_trailing_newline(make_set, context):
    template_set = make_set({"email.subject.j2": "s", "email.txt.j2": "正文\n"})
    message = render_message(template_set, "email", context, signature=SIGNATURE, opt_out=None)
    assert message.body == "正文"
