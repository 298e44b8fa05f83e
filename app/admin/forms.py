"""Admin forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A POST with nothing but its CSRF token (logout, retry, cancel, revoke…)."""


class TenantForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(min=1, max=200)])


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    role = SelectField(
        "Role", choices=[SelectChoice("viewer", "viewer (read only)"), SelectChoice("admin", "admin")], default="viewer"
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=1024)])
